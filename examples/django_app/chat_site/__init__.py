"""A minimal single-settings Django site that streams chat answers with litestream."""
