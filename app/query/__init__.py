"""The read side of the intake (operators' and municipalities' API, CLI): all its SQL."""
