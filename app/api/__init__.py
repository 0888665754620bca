"""The operator and municipality JSON API, authentication and the public feedback."""
