"""Import-only stand-in: `Client` exists so MSight's nats_pubsub module imports; using it fails loudly."""


class Client:
    def __init__(self, *args, **kwargs):
        raise RuntimeError("nats stand-in: the NATS back end is not available in these tests")
