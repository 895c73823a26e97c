// TollgateGateway: the metering proxy — the request pipeline and its steps (Pipeline/), one dialect per backend kind
// (Dialects/), limits (Limits/), the NIO connection handler and exchange (Connection/), the upstream HTTP client
// (Upstream/), usage capture, spool and batched writer (Metering/).
