"""Usage: what placed jobs really ran (``POST /v1/placements/{id}/report``) and imported billing history (FOCUS)."""
