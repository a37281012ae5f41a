# JSON schemas generated from the host's pydantic models (issue 12): never edit them by hand.
#   make schemas         write boards/board.schema.json from otalink.host.tools.deploy.profile
#   make schemas-check   fail when a committed schema differs from its model (also a test)
.PHONY: schemas schemas-check

schemas: $(STAMP)
	$(BIN)/python tools/gen_schemas.py

schemas-check: $(STAMP)
	$(BIN)/python tools/gen_schemas.py --check
