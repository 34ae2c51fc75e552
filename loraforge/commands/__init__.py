"""Subcommands of the `loraforge` CLI, one module each, every one exposing `register(subparsers)`.

A command's `func(args) -> int` receives the parsed arguments, builds Settings with
`loraforge.config.load_settings()` itself, and raises LoraforgeError for anything the user must fix.
"""
