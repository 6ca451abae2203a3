package gateway

// The SDK runs every request on a goroutine of its own, which starts with
// a small stack. A tool call's pipeline (grant, Cedar, the recorded
// decision, inspection, the upstream call) is deep enough to make that
// stack grow, twice or more, and each growth copies and re-adjusts every
// frame below it, the SDK's included: in the gateway benchmark's profile
// that copying was 5.5% of the gateway's CPU, all of it on calls' critical
// path. Growing the stack once, as soon as the request is known to be a
// tool call and while few frames sit below, brought it to 1.7%.

// pipelineStack is what a tool call's pipeline needs, with a margin: with
// it reserved, the profile shows no further growth.
const pipelineStack = 16 << 10

// growStack needs pipelineStack bytes of stack, so that the runtime grows
// the caller's stack, if it must, here and at once. It is not inlined (its
// frame would become its caller's) and it reads its array (or the compiler
// would drop it).
//
//go:noinline
func growStack(i int) byte {
	var pad [pipelineStack]byte
	pad[i] = 1
	return pad[i/2]
}
