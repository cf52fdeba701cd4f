"""The one LLM layer: endpoints (local llama.cpp, OpenAI, any OpenAI-compatible, vLLM), the client, cache and ledger."""
