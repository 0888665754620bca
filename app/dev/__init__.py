"""Development and test aids: the dev PKI, the demo party, samples, a client, the mail sink."""
