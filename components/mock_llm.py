"""The mock OpenAI API on the mock pool: which implementation.

The stack's ``mock`` key chooses a folder of ``mock_llm/`` (``fast``: nginx + Lua from a pinned
OpenResty image, the default; ``wiremock``: the published benchmark's WireMock chart). Each has its
own ComponentResource module (components/fast_mock.py, components/wiremock_mock.py) taking
:class:`components.mock_args.MockArgs`; :func:`deploy_mock` picks it.
"""

from __future__ import annotations

from components.fast_mock import FastMock
from components.mock_args import DeployedMock, MockArgs
from components.wiremock_mock import WireMock

COMPONENTS: dict[str, type] = {"fast": FastMock, "wiremock": WireMock}


def deploy_mock(name: str, args: MockArgs) -> DeployedMock:
    """The component of the chosen implementation (``args.mock.name``)."""
    if args.mock.name not in COMPONENTS:
        raise ValueError(f"no EKS component for the {args.mock.name} mock; known: {', '.join(COMPONENTS)}")
    return COMPONENTS[args.mock.name](name, args)
