# The application channel of the agent (docs/protocol.md "Application channel", docs/device.md
# "Writing an ECU application"), loaded the first time the application sends an event or the
# host sends APP, then kept:
#   Port(agent)  .request(m)   an APP [17, chan, id, data] from the host: into the bounded inbox
#                .send(chan, data) -> bool   an ECU-initiated event (id 0) into the bounded outbox
# A task of its own calls on_message(chan, data) for each request and writes the reply (APP with
# the request's id) or ERROR(E_APP_CHANNEL, chan, APP) / ERROR(E_INTERNAL, chan, APP), and writes
# waiting events when the line takes them. It runs between the agent's frames, so an update never
# stalls it and it never stalls an update; a full inbox is ERROR(E_APP_BUSY, chan, APP), a full
# outbox makes send() return False (the application decides what to drop).
import sys

from otalink.protocol.hotpath import frame, put_head

try:
    from micropython import const
except ImportError:  # CPython (tooling only)

    def const(x):
        return x


# protocol/codes.py values (private copies, tests/protocol/test_wire.py checks them)
_E_APP_BUSY = const(81)
_E_APP_CHANNEL = const(80)
_E_INTERNAL = const(63)
_MSG_APP = const(0x11)
_MSG_ERROR = const(0xF)
_APP_MAX_DATA = const(256)
_APP_MAX_CHAN = const(255)
_INBOX = const(4)  # host requests waiting for on_message
_OUTBOX = const(4)  # application events waiting for the line
_T_REPLY_MS = const(2000)  # engine.py's bound on one write


def pack(chan, mid, data):
    # an APP frame [17, chan, id, data]
    n = len(data)
    b = bytearray(16 + n)
    b[0] = 0x84
    b[1] = _MSG_APP
    p = put_head(0, chan, b, 2)
    p = put_head(0, mid, b, p)
    p = put_head(2, n, b, p)
    b[p : p + n] = data
    return frame(memoryview(b)[: p + n])


class Port:
    def __init__(self, a):
        import asyncio

        self.a = a
        self.inbox = []
        self.outbox = []
        self.event = asyncio.Event()
        asyncio.create_task(self._run())

    def request(self, m):
        a = self.a
        chan = m[1]
        if a.on_message is None:
            a._error(_E_APP_CHANNEL, chan)
        elif len(self.inbox) >= _INBOX:
            a._error(_E_APP_BUSY, chan)
        else:
            self.inbox.append((chan, m[2], bytes(m[3])))
            self.event.set()

    def send(self, chan, data):
        if (
            len(self.outbox) >= _OUTBOX
            or len(data) > _APP_MAX_DATA
            or not 0 <= chan <= _APP_MAX_CHAN
        ):
            return False
        self.outbox.append(pack(chan, 0, data))
        self.event.set()
        return True

    def step(self):
        # one host request to on_message, its reply (or ERROR) on the line; then one waiting
        # event when the line takes it now. True while work is left.
        a = self.a
        if self.inbox:
            if not a.wake():  # (a request came in on the line: awake, unless it just rested)
                return True  # no room for the engine yet: the request waits
            chan, mid, data = self.inbox.pop(0)
            h = a.on_message
            code = _E_APP_CHANNEL
            try:
                r = h(chan, data) if h is not None else None
            except Exception as e:
                sys.print_exception(e)
                r = None
                code = _E_INTERNAL
            if mid:
                if r is None or len(r) > _APP_MAX_DATA:
                    a._small(_MSG_ERROR, code, chan, _MSG_APP)
                else:
                    a._send_view(memoryview(pack(chan, mid, r)))
        if self.outbox and a.link.writable():
            # an event is written here, not by the engine: an agent at rest still publishes
            f = self.outbox.pop(0)
            try:
                a.link.write(f, len(f), _T_REPLY_MS)
            except OSError:
                pass  # dead line: the event is lost, as on a real bus
        return bool(self.inbox) or bool(self.outbox)

    async def _run(self):
        import asyncio

        ev = self.event
        while True:
            await ev.wait()
            ev.clear()
            while self.step():
                # an event the line does not take yet waits; everything else between two frames
                await asyncio.sleep_ms(10 if self.outbox and not self.inbox else 0)
