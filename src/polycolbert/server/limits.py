"""How much work a server accepts unless told otherwise: ``polycolbert serve``'s options and
``load_registry`` / ``create_app`` / ``Batcher`` all default to these (a light module, so the CLI can
show them without importing the web stack)."""

MAX_QUEUE = 256  # jobs waiting per model; one more is refused at once (429), never waited on
MAX_BATCH_TOKENS = 32768  # tokens merged into one forward pass
MAX_REQUEST_TOKENS = 262_144  # tens of seconds of CPU encoding at most: one request cannot hog the model
# Largest response body a request may ask for, estimated before encoding (rows x dimensions x the bytes
# each value takes in its format, ``formats.json_row_bytes``); more is a 400 that says how to ask for less.
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
