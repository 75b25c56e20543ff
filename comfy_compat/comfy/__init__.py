"""ComfyUI's `comfy` package for custom-node packs, written over Latentgraph's ldm/ and engine/.

Each submodule offers the names packs use (surveyed across popular packs), with ComfyUI's
signatures, delegating to our own implementations. A name that is not offered raises the usual
AttributeError/ImportError naming it, so a pack that needs it fails loudly at import.
"""
