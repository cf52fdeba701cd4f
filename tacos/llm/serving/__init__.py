"""Starting and watching model servers (local llama.cpp, vLLM), readiness of remote servers, local models."""
