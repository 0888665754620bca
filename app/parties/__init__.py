"""The sender registry: who may send, with which certificates, CPAs and municipalities."""
