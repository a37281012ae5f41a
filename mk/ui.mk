# ui: the screen's screenshots (test-artifacts/screens, best ones to docs/img) and the API schema.
.PHONY: screens openapi

screens: sysdeps $(STAMP) mpy
	$(BIN)/pytest tests/gateway/api/test_browser.py -q

openapi: $(STAMP)
	$(BIN)/python -m otalink.host.gateway.api.schema
