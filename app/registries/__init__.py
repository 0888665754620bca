"""Senders known from NHN's registries (issue 23): the Adresseregister (SOAP or REST) and the
CPP/CPA registry (REST), checked like an import and cached in the database."""
