"""The ECU link's timing and retry knobs, in one place.

Public interface (stable):
    LinkPolicy(reply_timeout=T_REPLY_MS/1000, retry=REQUEST_RETRY,
               first_data_timeout=T_FIRST_DATA_MS/1000, recover_timeout=60.0,
               reopen=REOPEN_RETRY, end_timeout=5.0)
      .tries -> int                                  tries of one request (retry.attempts)
      .with_reply_timeout(seconds) -> LinkPolicy     the same policy, another per-try wait
    REQUEST_RETRY, REOPEN_RETRY: RetryPolicy        the defaults (``otalink.host.retry``)

Every wait and retry of the session and the uploader comes from here (nothing mutates a
client's timeout). The retries are the host's one ``RetryPolicy`` (downloads, ECU lines and the
report outbox share it): a request is sent again ``retry.attempts`` times in all, each try
waiting ``reply_timeout`` for its reply (the wait is the pause: REQUEST_RETRY adds none); a
session re-opened after a link loss HELLOs until ``recover_timeout``, pausing by ``reopen``
between answers out of the profile (a broken peer is not flooded).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from otalink.host.retry import RetryPolicy
from otalink.protocol import codes

REQUEST_RETRY = RetryPolicy(attempts=3, base_s=0.0, cap_s=0.0, jitter=False)
REOPEN_RETRY = RetryPolicy(attempts=1, base_s=0.05, cap_s=1.0)


@dataclass(frozen=True)
class LinkPolicy:
    """How long the host waits for an ECU and how often it tries again."""

    reply_timeout: float = codes.T_REPLY_MS / 1000  # per try of a request (docs/protocol.md)
    retry: RetryPolicy = REQUEST_RETRY  # tries of one request before EcuLinkError
    # BEGIN -> its ACK (slot erase) and END -> RESULT (read-back) may take this long in all,
    # each PROGRESS restarting the reply_timeout wait
    first_data_timeout: float = codes.T_FIRST_DATA_MS / 1000
    # a transfer re-HELLOs and re-BEGINs after link losses until no progress for this long
    recover_timeout: float = 60.0
    reopen: RetryPolicy = REOPEN_RETRY  # pauses between HELLOs answered out of the profile
    end_timeout: float = 5.0  # the least per-try wait for END's RESULT (the hash check)

    def __post_init__(self) -> None:
        if self.reply_timeout <= 0 or self.recover_timeout < 0 or self.first_data_timeout <= 0:
            raise ValueError(f"invalid LinkPolicy {self}")

    @property
    def tries(self) -> int:
        return self.retry.attempts

    def with_reply_timeout(self, seconds: float) -> LinkPolicy:
        """This policy with another per-try reply wait."""
        return dataclasses.replace(self, reply_timeout=seconds)
