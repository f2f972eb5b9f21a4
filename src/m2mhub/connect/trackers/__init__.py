"""GPS tracker protocols: one package per protocol (framing, decoder, encoder, const)."""
