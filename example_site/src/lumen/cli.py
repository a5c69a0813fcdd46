"""The `lumen` command line: talk to a running lumend server."""

from __future__ import annotations

import argparse


def build_parser() -> argparse.ArgumentParser:
    """`lumen enqueue`, `lumen status` and the dead-letter commands."""
    parser = argparse.ArgumentParser(prog="lumen")
    parser.add_argument("--server", default="http://localhost:7420", help="lumend's URL")
    commands = parser.add_subparsers(dest="command", required=True)
    enqueue = commands.add_parser("enqueue", help="queue a job")
    enqueue.add_argument("kind")
    enqueue.add_argument("--payload", default="{}", help="JSON arguments of the job")
    commands.add_parser("status", help="counts of queued, running and dead jobs")
    dead = commands.add_parser("dead", help="the dead-letter queue")
    dead_commands = dead.add_subparsers(dest="dead_command", required=True)
    dead_commands.add_parser("list", help="jobs that used up max_attempts")
    requeue = dead_commands.add_parser("requeue", help="queue a dead job again")
    requeue.add_argument("job_id")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command and return its exit status."""
    arguments = build_parser().parse_args(argv)
    print(f"would run {arguments.command} against {arguments.server}")
    return 0
