# The bench's memory hook inside a request (session._mem), imported by main.py only with config
# "memtrace" (or OTALINK_MEMTRACE), so an agent without it carries none of this code: at a tagged
# point (session._drop: "drop <module>") it samples the live heap after a collection and writes a
# new peak to stderr ("otalink-mem live=N in <tag>"; between messages the session itself writes
# "after type <n>"). bench/memtrace.py reads both.
import gc
import sys


def sampler(mt):
    # mt = the session's [peak] list (Session.memtrace)
    def sample(tag):
        gc.collect()
        a = gc.mem_alloc()
        if a > mt[0]:
            mt[0] = a
            sys.stderr.write("otalink-mem live=%d in %s\n" % (a, tag))

    return sample
