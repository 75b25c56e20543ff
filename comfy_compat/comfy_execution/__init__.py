"""ComfyUI's `comfy_execution` package for plugins, over Latentgraph's engine (engine/flow.py)."""
