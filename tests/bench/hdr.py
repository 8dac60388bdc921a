"""A small HdrHistogram-style histogram (log-linear buckets, fixed memory, no samples kept).

Values are integers in nanoseconds. With the defaults (3 significant digits, lowest discernible
value 1 us, highest trackable value 60 s) every recorded value lands in a bucket whose width is at
most 1/1000 of the value (1 us below about 2 ms), exactly like HdrHistogram (same index
arithmetic: 2048 sub-buckets, power-of-two buckets above them). Percentiles are read from the
bucket counts and reported as the highest value equivalent to the bucket (what HdrHistogram's
getValueAtPercentile returns); min and max are also kept exactly. Values above the highest
trackable one are clamped to it and counted in `clamped` (never silently dropped); negative
values are refused.
"""

import math


class Hdr:
    def __init__(self, lowest_ns=1000, highest_ns=60 * 10**9, digits=3):
        if lowest_ns < 1 or highest_ns < 2 * lowest_ns or not 1 <= digits <= 5:
            raise ValueError("hdr: bad range or digits")
        self.lowest, self.highest, self.digits = lowest_ns, highest_ns, digits
        largest_single_unit = 2 * 10**digits
        self.sub_mag = max(1, math.ceil(math.log2(largest_single_unit)))  # 11 for 3 digits
        self.sub_count = 1 << self.sub_mag                                  # 2048
        self.half_mag = self.sub_mag - 1
        self.half_count = self.sub_count >> 1                                 # 1024
        self.unit_mag = int(math.floor(math.log2(lowest_ns)))                 # 9 for 1 us
        self.mask = (self.sub_count - 1) << self.unit_mag
        smallest_untrackable = self.sub_count << self.unit_mag
        self.bucket_count = 1
        while smallest_untrackable <= highest_ns:
            smallest_untrackable <<= 1
            self.bucket_count += 1
        self.counts = [0] * ((self.bucket_count + 1) * self.half_count)
        self.total = 0
        self.min = None
        self.max = None
        self.clamped = 0

    # ---- index arithmetic (HdrHistogram's) ----
    def _bucket(self, v):
        return (v | self.mask).bit_length() - self.unit_mag - (self.half_mag + 1)

    def _index(self, v):
        b = self._bucket(v)
        sub = v >> (b + self.unit_mag)
        return ((b + 1) << self.half_mag) + (sub - self.half_count)

    def _value_at(self, index):
        b = (index >> self.half_mag) - 1
        sub = (index & (self.half_count - 1)) + self.half_count
        if b < 0:
            sub -= self.half_count
            b = 0
        return sub << (b + self.unit_mag)

    def _range_size(self, v):
        b = self._bucket(v)
        sub = v >> (b + self.unit_mag)
        if sub >= self.sub_count:
            b += 1
        return 1 << (self.unit_mag + b)

    def highest_equivalent(self, v):
        lo = self._value_at(self._index(v))
        return lo + self._range_size(lo) - 1

    # ---- recording and reading ----
    def record(self, v, count=1):
        v = int(v)
        if v < 0:
            raise ValueError(f"hdr: negative value {v}")
        if v > self.highest:
            self.clamped += count
            v = self.highest
        self.counts[self._index(v)] += count
        self.total += count
        self.min = v if self.min is None else min(self.min, v)
        self.max = v if self.max is None else max(self.max, v)

    def merge(self, other):
        if (other.lowest, other.highest, other.digits) != (self.lowest, self.highest, self.digits):
            raise ValueError("hdr: merging histograms of different shapes")
        for i, c in enumerate(other.counts):
            if c:
                self.counts[i] += c
        self.total += other.total
        self.clamped += other.clamped
        for v in (other.min, other.max):
            if v is not None:
                self.min = v if self.min is None else min(self.min, v)
                self.max = v if self.max is None else max(self.max, v)

    def percentile(self, p):
        """Value at percentile p (0..100): the highest value equivalent to the bucket holding
        the ceil(p% x total)-th smallest value, capped at the exact max. None when empty."""
        if self.total == 0:
            return None
        want = max(1, math.ceil(p / 100.0 * self.total))
        seen = 0
        for i, c in enumerate(self.counts):
            if c:
                seen += c
                if seen >= want:
                    return min(self.highest_equivalent(self._value_at(i)), self.max)
        return self.max

    def distribution(self, ticks_per_half=5):
        """[(percentile, value)] in HdrHistogram's percentile-distribution shape (points
        bunched towards 100 %: ticks_per_half per halving of the distance to 100 %), ending at
        the max. For plots."""
        out = []
        if self.total == 0:
            return out
        p = 0.0
        while p < 100.0 - 1e-9:
            out.append((p, self.percentile(p)))
            remaining = 100.0 - p
            halvings = math.floor(math.log2(100.0 / remaining)) if remaining < 100.0 else 0
            step = 100.0 / (2 ** (halvings + 1)) / ticks_per_half
            p += step
            if 100.0 - p < 100.0 / self.total / 2:  # past the resolution the samples give
                break
        out.append((100.0, self.max))
        return out

    def to_json(self):
        """Compact form: shape, totals and the non-zero [index, count] pairs (lossless)."""
        return {"lowest_ns": self.lowest, "highest_ns": self.highest, "digits": self.digits,
                "total": self.total, "min_ns": self.min, "max_ns": self.max, "clamped": self.clamped,
                "counts": [[i, c] for i, c in enumerate(self.counts) if c]}

    def summary_ns(self):
        return {"count": self.total, "p50": self.percentile(50), "p99": self.percentile(99),
                "p99.9": self.percentile(99.9), "max": self.max, "min": self.min, "clamped": self.clamped}


def _selftest():
    """Checks the bucket arithmetic against a sorted list (python3 hdr.py)."""
    import random
    h = Hdr()
    rnd = random.Random(7)
    vals = [int(rnd.lognormvariate(13, 1.5)) for _ in range(20000)] + [0, 999, 1000, 60 * 10**9]
    for v in vals:
        h.record(v)
    vals.sort()
    for p in (0, 1, 50, 90, 99, 99.9, 99.99, 100):
        exact = vals[max(1, math.ceil(p / 100 * len(vals))) - 1]
        got = h.percentile(p)
        tol = max(h.lowest, exact / 10**h.digits * 2)  # within one bucket (<= 1/1000 wide above 2 ms)
        assert exact <= got <= exact + tol, (p, exact, got)
    assert h.max == vals[-1] and h.min == 0 and h.total == len(vals) and h.clamped == 0
    h.record(61 * 10**9)
    assert h.clamped == 1 and h.max == h.highest
    g = Hdr()
    g.merge(h)
    assert g.percentile(99) == h.percentile(99) and g.total == h.total
    d = h.distribution()
    assert d[-1] == (100.0, h.max) and all(a[1] <= b[1] for a, b in zip(d, d[1:]))
    print(f"hdr selftest ok: {len(h.counts)} counters, {h.bucket_count} buckets")


if __name__ == "__main__":
    _selftest()
