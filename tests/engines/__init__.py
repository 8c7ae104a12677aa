"""Real inference engines of ``pytest -m engine`` (llama.cpp's llama-server, Ollama): their
builds (`builds`, run by ``deploy/engines/build.sh``) and launchers (`launchers`); test tooling,
not in the wheel."""
