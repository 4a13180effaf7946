"""``cocaine-tool``: the command line to manage a Cocaine runtime.

    cocaine-tool [--host H] [--port P] [--token T] [--timeout S] GROUP COMMAND [ARGS]

The connection options may also follow the command (``cocaine-tool app list --port 10054``).
Groups: ``app``, ``profile``, ``runlist``, ``crashlog``, ``proxy``; commands ``info``,
``locate`` and ``call``. Every failure prints one ``error: ...`` line and exits with 1;
usage errors exit with 2.
"""

from __future__ import annotations

import click

from cocaine.tool.app import app_group
from cocaine.tool.context import ToolGroup, connection_options
from cocaine.tool.crashlog import crashlog_group
from cocaine.tool.info import info
from cocaine.tool.misc import call, locate
from cocaine.tool.profile import profile_group
from cocaine.tool.proxy import proxy_group
from cocaine.tool.runlist import runlist_group


@click.group(cls=ToolGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cocaine", prog_name="cocaine-tool")
@connection_options
def cli() -> None:
    """Manage a Cocaine runtime: apps, profiles, runlists, crashlogs; call any service.

    The runtime's locator is --host/--port, else COCAINE_LOCATOR (host:port), else
    localhost:10053. The token is --token, else COCAINE_TOKEN.

    \b
    Quick start, in an app's directory (manifest.json names the executable "slave"):
      cocaine-tool app upload
      cocaine-tool profile upload --name default --profile '{}'
      cocaine-tool app start --name echo --profile default
      cocaine-tool call echo ping hello
      cocaine-tool info
    """


_COMMANDS: tuple[click.Command, ...] = (
    app_group,
    profile_group,
    runlist_group,
    crashlog_group,
    proxy_group,
    info,
    locate,
    call,
)
for _command in _COMMANDS:
    cli.add_command(_command)


def main() -> None:
    cli(prog_name="cocaine-tool")


__all__ = ["cli", "main"]
