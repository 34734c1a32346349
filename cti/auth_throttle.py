"""Failed sign-ins, throttled per user id and per client address; and the public web form, per address
(``AddressThrottle``: every request counts, as a failure does here). Pure: no IO, the clock is given.

Every attempt counts as a failure the moment it starts, so a burst of concurrent
guesses cannot all slip past the counter while their passwords are being hashed;
a success then clears the user's count and takes its own attempt back from the
address's. After ``free_failures`` failures with no pause of ``window`` seconds
between them, each further attempt waits a delay that doubles from
``first_delay`` up to ``max_delay`` before it is even checked. An attempt refused
for waiting is not counted: it does not lengthen the wait.

Memory is bounded: each kind (user ids, addresses) keeps at most ``max_keys``
entries, the least recently touched dropped first, so the throttle holds at most
2 × ``max_keys`` small entries (about 200 bytes each: 4 MB at the default 10,000)
however many ids or addresses a flood makes up. Dropping an entry forgets its
failures; an attacker would need ``max_keys`` other fresh keys, each paying a full
password check, to flush one, far slower than waiting out the delay.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    free_failures: int = 5  # failures allowed before the delays start
    window: float = 900.0  # seconds without a failure after which a key's count starts again
    first_delay: float = 1.0  # seconds: the first wait, doubled at each further failure…
    max_delay: float = 300.0  # …up to 5 minutes
    max_keys: int = 10_000  # entries kept per kind (user ids, addresses)

    def delay(self, failures: int) -> float:
        """The wait before the next attempt after ``failures`` failures."""
        if failures < self.free_failures:
            return 0.0
        return float(min(self.first_delay * 2 ** min(failures - self.free_failures, 64), self.max_delay))


@dataclass(slots=True)
class _Entry:
    failures: int = 0
    last: float = 0.0  # when the last attempt was counted
    until: float = 0.0  # no attempt is checked before this moment


class _Keys:
    """One kind of key: a bounded LRU of entries."""

    def __init__(self, policy: ThrottlePolicy) -> None:
        self._policy = policy
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def wait(self, key: str, now: float) -> float:
        entry = self._entries.get(key)
        return 0.0 if entry is None else max(0.0, entry.until - now)

    def count(self, key: str, now: float) -> None:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
            if len(self._entries) > self._policy.max_keys:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(key)
            if now - entry.last > self._policy.window:
                entry.failures = 0
        entry.failures += 1
        entry.last = now
        entry.until = now + self._policy.delay(entry.failures)

    def refund(self, key: str) -> None:
        """Take one counted attempt back (it succeeded, or was never checked)."""
        entry = self._entries.get(key)
        if entry is None:
            return
        entry.failures = max(0, entry.failures - 1)
        entry.until = entry.last + self._policy.delay(entry.failures) if entry.failures else 0.0
        if entry.failures == 0:
            del self._entries[key]

    def clear(self, key: str) -> None:
        self._entries.pop(key, None)


class SignInThrottle:
    def __init__(self, policy: ThrottlePolicy | None = None, *, clock: Callable[[], float]) -> None:
        self.policy = policy or ThrottlePolicy()
        self._clock = clock
        self._users = _Keys(self.policy)
        self._addresses = _Keys(self.policy)

    def attempt(self, user: str, address: str) -> float:
        """0 when the attempt may be checked now (it is counted as a failure until
        ``succeeded`` or ``refund``); else the seconds to wait, nothing counted."""
        now = self._clock()
        wait = max(self._users.wait(user, now), self._addresses.wait(address, now))
        if wait > 0:
            return wait
        self._users.count(user, now)
        self._addresses.count(address, now)
        return 0.0

    def succeeded(self, user: str, address: str) -> None:
        """The user's count is cleared; the address keeps its other failures."""
        self._users.clear(user)
        self._addresses.refund(address)

    def refund(self, user: str, address: str) -> None:
        """The attempt was never checked (the server was too busy): it does not count."""
        self._users.refund(user)
        self._addresses.refund(address)

    def sizes(self) -> tuple[int, int]:
        """Entries kept: (user ids, addresses)."""
        return len(self._users), len(self._addresses)


class AddressThrottle:
    """Requests per client address, the same bounded keys and doubling waits as the sign-ins': the public web
    form's bound (every request counts; after ``free_failures`` of them with no pause of ``window`` seconds, each
    further one waits ``first_delay``, doubling up to ``max_delay``)."""

    def __init__(self, policy: ThrottlePolicy, *, clock: Callable[[], float]) -> None:
        self.policy = policy
        self._clock = clock
        self._addresses = _Keys(policy)

    def attempt(self, address: str) -> float:
        """0 when the request may go on (it is counted); else the seconds to wait, nothing counted."""
        now = self._clock()
        wait = self._addresses.wait(address, now)
        if wait > 0:
            return wait
        self._addresses.count(address, now)
        return 0.0

    def __len__(self) -> int:
        return len(self._addresses)
