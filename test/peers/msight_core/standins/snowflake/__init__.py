"""Stand-in for the `snowflake-id` package (MSight's `generate_frame_id`), which Debian lacks.

Same id layout as snowflake-id's SnowflakeGenerator with its default epoch 0:
`((unix_ms - epoch) << 22) | (instance << 12) | sequence`. Like the real one, a generator counts up within one
millisecond; MSight makes a new generator per frame, so its ids can collide within a millisecond (kept as is).
"""
import time

MAX_TS = (1 << 41) - 1
MAX_INSTANCE = (1 << 10) - 1
MAX_SEQ = (1 << 12) - 1


class SnowflakeGenerator:
    def __init__(self, instance, *, seq=0, epoch=0, timestamp=None):
        if not 0 <= instance <= MAX_INSTANCE:
            raise ValueError(f"instance must be 0-{MAX_INSTANCE}")
        self._inf = instance << 12
        self._seq = seq
        self._epo = epoch
        self._ts = (timestamp if timestamp is not None else int(time.time() * 1000)) - epoch

    def __iter__(self):
        return self

    def __next__(self):
        current = int(time.time() * 1000) - self._epo
        if self._ts == current:
            if self._seq == MAX_SEQ:
                return None
            self._seq += 1
        elif self._ts > current:
            return None
        else:
            self._seq = 0
        self._ts = current
        return self._ts << 22 | self._inf | self._seq
