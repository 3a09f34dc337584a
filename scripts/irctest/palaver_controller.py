"""irctest controller for palaver's services selection (our own code).

The shared generic controller (../shared/tools/irctest/generic_controller.py)
starts the server and registers accounts; irctest additionally waits for a
separate services process before every client of a services test. palaver's
accounts and NickServ are built into the server, which is ready once its port
accepts, so there is nothing to wait for.

A few services tests ask for things palaver deliberately does not have. For
those this controller raises irctest's own NotImplementedByController (the test
is reported as skipped, with the reason), the mechanism irctest's controllers
use for what their server cannot set up; everything else runs unchanged:

- Ergo's multiclient with always-on: several connections sharing one nick, and
  clients kept joined while disconnected. A palaver nick belongs to one
  connection (a second one gets 433); sessions of one account under different
  nicks do share read markers.
- A separate services server in LINKS: palaver's services are built in, so LINKS
  lists this server alone (as it should).
- Passwords too long to register: irctest registers accounts with one IRC line,
  and lines are limited to 512 bytes (longer ones get 417).
"""

import os
from typing import Any, Dict, Optional

from generic_controller import GenericServerController
from irctest.runner import NotImplementedByController

# Tests that assume a topology palaver does not have, by pytest node id, and why.
_ABSENT_TOPOLOGY: Dict[str, str] = {
    "irctest/server_tests/links.py::ServicesLinksTestCase::testLinksWithServices": (
        "a separately linked services server in LINKS: palaver's services are "
        "built into the server, so LINKS lists this server alone"
    ),
}

# The longest line a client may send, CR LF included (RFC 1459/2812; 417 beyond).
_MAX_LINE = 512


class _Probe(dict):
    """A configuration dict that grows sub-dicts on lookup, so an ergo_config
    function can be run against it to see which settings it asks for."""

    def __missing__(self, key: str) -> "_Probe":
        value = _Probe()
        self[key] = value
        return value


def _asks_for_ergo_multiclient(test_config: Any) -> bool:
    """Whether a test's configuration changes Ergo's multiclient settings (the
    read-marker service tests make always-on the default and rely on one nick
    having several connections)."""
    ergo_config = getattr(test_config, "ergo_config", None)
    if ergo_config is None:
        return False
    probe = _Probe()
    try:
        ergo_config(probe)
    except Exception:  # an edit we cannot simulate is not a multiclient one
        return False
    accounts = dict.get(probe, "accounts")
    return isinstance(accounts, dict) and bool(accounts.get("multiclient"))


def _current_test() -> Optional[str]:
    """The running test's node id, from the variable pytest keeps up to date."""
    current = os.environ.get("PYTEST_CURRENT_TEST")
    return current.rsplit(" ", 1)[0] if current else None


class PalaverController(GenericServerController):
    """The generic controller, with services built into the server."""

    def run(self, *args: Any, **kwargs: Any) -> None:
        """Declares the tests palaver cannot take part in, then starts the server."""
        reason = _ABSENT_TOPOLOGY.get(_current_test() or "")
        if reason:
            raise NotImplementedByController(reason)
        if _asks_for_ergo_multiclient(self.test_config):
            raise NotImplementedByController(
                "Ergo's multiclient/always-on (several connections on one nick, "
                "kept joined while disconnected): a palaver nick has one connection"
            )
        super().run(*args, **kwargs)

    def wait_for_services(self) -> None:
        """Accounts are served by chat-server itself: ready with the port."""

    def registerUser(  # type: ignore[no-untyped-def]
        self, case, username: str, password: Optional[str] = None
    ) -> None:
        """Registers as the generic controller does, unless the line it would send
        is longer than a client may send (testPlainLarge800's 592-byte password):
        such an account cannot be registered over IRC at all."""
        if password is not None:
            mode = os.environ.get("IRC_SERVER_ACCOUNTS", "").lower()
            if mode == "register":
                line = f"REGISTER * * {password}"
            else:
                line = f"PRIVMSG {self.nickserv} :REGISTER {password} foo@example.org"
            if len(line.encode()) + 2 > _MAX_LINE:
                raise NotImplementedByController(
                    f"a {len(password.encode())}-byte password: its registration "
                    f"line is longer than the {_MAX_LINE} bytes an IRC line may have"
                )
        super().registerUser(case, username, password)


def get_irctest_controller_class():  # type: ignore[no-untyped-def]
    """The entry point irctest's --controller option looks up."""
    return PalaverController
