"""Generated from protocol/protocol.toml by `make render`. Do not edit."""
