"""evalstream worker: consumes evaluation requests, drives the engine, publishes results."""
