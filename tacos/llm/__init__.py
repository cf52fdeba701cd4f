"""The one LLM layer, in three concerns:

    serving/      starting and watching model servers: the process, the local llama.cpp servers (and their child),
                  vLLM, readiness of remote servers, the local model registry
    calling/      one client for every call: endpoints (providers), settings, request/result types, the wire format,
                  dispatch, cache, cost ledger, the run's session, output parsing
    likelihoods/  token log-likelihoods for the scoring signals: the protocol, transformers, an echo model for tests
"""
