"""irctest controller for palaver's services selection (our own code).

The shared generic controller (../shared/tools/irctest/generic_controller.py)
starts the server and registers accounts; irctest additionally waits for a
separate services process before every client of a services test. palaver's
accounts and NickServ are built into the server, which is ready once its port
accepts, so there is nothing to wait for.
"""

from generic_controller import GenericServerController


class PalaverController(GenericServerController):
    """The generic controller, with services built into the server."""

    def wait_for_services(self) -> None:
        """Accounts are served by chat-server itself: ready with the port."""


def get_irctest_controller_class():  # type: ignore[no-untyped-def]
    """The entry point irctest's --controller option looks up."""
    return PalaverController
