"""Import-only stand-in for confluent-kafka: MSight imports it at module level; these tests use Redis."""


class _Unavailable:
    def __init__(self, *args, **kwargs):
        raise RuntimeError("confluent_kafka stand-in: the Kafka back end is not available in these tests")


class Producer(_Unavailable):
    pass


class Consumer(_Unavailable):
    pass
