"""ComfyUI's `comfy_api` package for plugins: `latest` (V3 schema nodes: io, ui, ComfyExtension,
ComfyAPI) and the pinned `v0_0_2` version, written over Latentgraph's engine."""
