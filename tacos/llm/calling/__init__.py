"""One client for every LLM call: providers, settings, types, wire format, dispatch, cache, ledger, session."""
