"""The engine simulator: a real HTTP server speaking vLLM's and Ollama's APIs over a latency
model of continuous batching (`server` starts it; `profile` holds its parameters)."""
