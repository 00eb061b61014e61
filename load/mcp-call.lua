-- wrk: every request a small MCP tools/call POST (Streamable HTTP), for the per-tool policy A/B.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_candidates","arguments":{"q":"rust"}}}'
