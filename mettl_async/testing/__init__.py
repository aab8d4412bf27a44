"""A fake Mettl server, for your tests and for mettl-async's own.

:class:`FakeMettl` is an ``aiohttp.web`` application that checks every request
the way Mettl does: it rebuilds the URL it was called on, reads the parameters
from the query string and from a form body, and verifies ``ak`` (E403 for an
unknown key), ``ts`` (E504 when missing, malformed or outside 24 hours) and
``asgn`` (E401 on a mismatch). It counts requests, the peak number in flight
and bad signatures, and can inject latency and faults.

Run it over loopback with :class:`FakeMettlServer`::

    async with FakeMettlServer() as server:
        async with server.client() as mettl:
            account = await mettl.request("GET", "/account")

or as a pytest fixture in your own ``conftest.py``::

    @pytest.fixture
    async def mettl_server():
        async with FakeMettlServer() as server:
            yield server

It calls back: a schedule whose webhook URLs are set (``create_schedule``,
``edit_schedule``, :func:`mettl_async.webhooks.with_webhooks`) gets Mettl's
POSTs when the account changes (``fake.mutate.start``, ``finish``, ``grade``,
``resume``...), each one recorded in ``fake.deliveries``; ``await
fake.deliveries_settled()`` waits for them (see
:mod:`~mettl_async.testing.callbacks`). ``webhook_payload()`` and its four
siblings build the bodies Mettl sends, for testing a receiver without the fake
(see :mod:`~mettl_async.testing.webhook_samples`).
"""

from __future__ import annotations

from mettl_async.testing.app import DEMO_PRIVATE_KEY, DEMO_PUBLIC_KEY, FakeMettl, Fault
from mettl_async.testing.app import FAULT_KINDS as FAULT_KINDS
from mettl_async.testing.app import TS_FUTURE_SLACK as TS_FUTURE_SLACK
from mettl_async.testing.app import TS_WINDOW as TS_WINDOW
from mettl_async.testing.app import FaultKind as FaultKind
from mettl_async.testing.app import Handler as Handler
from mettl_async.testing.callbacks import CallbackRetry as CallbackRetry
from mettl_async.testing.callbacks import Delivery as Delivery
from mettl_async.testing.callbacks import FakeCallbacks as FakeCallbacks
from mettl_async.testing.data import FakeAccount as FakeAccount
from mettl_async.testing.data import FakeSchedule as FakeSchedule
from mettl_async.testing.data import format_timestamp as format_timestamp
from mettl_async.testing.errors import MESSAGES as MESSAGES
from mettl_async.testing.routes import PBT_CATALOGUE as PBT_CATALOGUE
from mettl_async.testing.runner import FakeMettlServer
from mettl_async.testing.runner import add_fake_server_arguments as add_fake_server_arguments
from mettl_async.testing.runner import fake_from_arguments as fake_from_arguments
from mettl_async.testing.runner import free_port as free_port
from mettl_async.testing.runner import main as main
from mettl_async.testing.runner import serve_until_stopped as serve_until_stopped
from mettl_async.testing.state import AccountMutations as AccountMutations
from mettl_async.testing.state import LinkStyle as LinkStyle
from mettl_async.testing.state import RecordedRequest
from mettl_async.testing.webhook_samples import (
    candidate_test_resumed_payload as candidate_test_resumed_payload,
)
from mettl_async.testing.webhook_samples import finish_test_payload as finish_test_payload
from mettl_async.testing.webhook_samples import (
    graded_assessment_payload as graded_assessment_payload,
)
from mettl_async.testing.webhook_samples import (
    start_assessment_payload as start_assessment_payload,
)
from mettl_async.testing.webhook_samples import webhook_payload as webhook_payload

# The package's layout, for a reader looking for one part of the fake:
#   app.py     FakeMettl: the aiohttp.web app, its checks, faults and middleware
#   routes.py  a handler per article (1 to 19) and the route table, ROUTES
#   state.py   what the fake keeps: FakeConfig, FakeState, FakeStats
#   errors.py  Mettl's error codes and Reply, the error a handler raises
#   runner.py  FakeMettlServer, and ``python -m mettl_async.testing``
#   data.py    the generated account: FakeAccount, FakeSchedule
#   callbacks.py      the fake's webhook calls: FakeCallbacks, Delivery, CallbackRetry
#   webhook_samples.py  the four webhook bodies of article 13, for tests

__all__ = [
    "DEMO_PRIVATE_KEY",
    "DEMO_PUBLIC_KEY",
    "FakeMettl",
    "FakeMettlServer",
    "Fault",
    "RecordedRequest",
]
