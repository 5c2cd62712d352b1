"""How a command is declared: its handler with its arguments next to it, in a group such as ``graphs``.

graphs = Group("graphs", "create, validate, list and draw graphs")

@graphs.command("show", "a graph's spec and versions", arg("graph"))
def show(api: Api, out: Output, args: argparse.Namespace) -> int: ...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from stepgraph_cli.client import Api
    from stepgraph_cli.output import Output

    Handler = Callable[[Api, Output, argparse.Namespace], int]


@dataclass(frozen=True)
class Arg:
    """One ``add_argument`` call, kept until the parser is built."""

    flags: tuple[str, ...]
    options: dict[str, Any]

    def add_to(self, parser: argparse.ArgumentParser | argparse._MutuallyExclusiveGroup) -> None:
        parser.add_argument(*self.flags, **self.options)


@dataclass(frozen=True)
class OneOf:
    """Arguments of which at most one (with ``required``, exactly one) may be given."""

    choices: tuple[Arg, ...]
    required: bool = False

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        group = parser.add_mutually_exclusive_group(required=self.required)
        for choice in self.choices:
            choice.add_to(group)


def arg(*flags: str, **options: Any) -> Arg:
    """An argument, as ``ArgumentParser.add_argument`` takes it."""
    return Arg(flags, options)


def one_of(*choices: Arg, required: bool = False) -> OneOf:
    return OneOf(choices, required)


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    arguments: tuple[Arg | OneOf, ...]
    handler: Handler


@dataclass
class Group:
    """A command group (``stepgraph graphs ...``): its commands in the order ``--help`` lists them."""

    name: str
    help: str
    commands: list[Command] = field(default_factory=list)

    def command(self, name: str, help: str, *arguments: Arg | OneOf) -> Callable[[Handler], Handler]:
        """Declare the decorated handler as command ``name`` taking ``arguments``."""

        def declare(handler: Handler) -> Handler:
            self.commands.append(Command(name, help, arguments, handler))
            return handler

        return declare

    def add_to(self, groups: argparse._SubParsersAction[Any], common: argparse.ArgumentParser) -> None:
        """Add the group and its commands to the top parser; every command takes the ``common`` options."""
        commands = groups.add_parser(self.name, help=self.help).add_subparsers(dest="command", required=True)
        for command in self.commands:
            parser = commands.add_parser(command.name, parents=[common], help=command.help)
            for argument in command.arguments:
                argument.add_to(parser)
            parser.set_defaults(func=command.handler)
