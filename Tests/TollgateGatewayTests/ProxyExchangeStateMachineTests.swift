import Testing
import TollgateCore

@testable import TollgateGateway

/// The proxied reply's state, event by event, without a channel.
@Suite struct ProxyExchangeStateMachineTests {
    static func meter(hidingInjectedUsage: Bool = false) -> SSEStreamMeter {
        SSEStreamMeter(operation: .chatCompletions, hideInjectedUsage: hidingInjectedUsage)
    }
    static let content = Array(#"data: {"id":"c1","model":"m","choices":[{"delta":{"content":"Hi"}}]}"#.utf8) + [10, 10]
    static let usageOnly = Array(#"data: {"id":"c1","model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#.utf8) + [10, 10]

    @Test func aWholeReplyIsWrittenWhileTheClientIsThereAndOnlyClosedOnceItIsGone() {
        var present = ProxyExchangeStateMachine()
        #expect(present.answer(close: false) == .write(close: false))
        var closing = ProxyExchangeStateMachine()
        #expect(closing.answer(close: true) == .write(close: true))
        var gone = ProxyExchangeStateMachine()
        #expect(gone.clientGone() == nil)  // nothing streaming: the reply is metered when it comes
        #expect(gone.answer(close: false) == .closeUnwritten)
    }

    @Test func aStreamPassesWholeEventsOnAndEndsWithWhatTheMeterHeld() throws {
        var machine = ProxyExchangeStateMachine()
        #expect(machine.streamStarted(status: 200, meter: Self.meter(hidingInjectedUsage: true), pausable: true) == .writeHead)
        // Half an event is held back until its blank line arrives.
        #expect(machine.upstreamBody(Self.content.prefix(10)) == nil)
        #expect(machine.upstreamBody(Self.content.dropFirst(10)) == Self.content)
        // The usage chunk the gateway asked for on the client's behalf is metered, not passed on.
        #expect(machine.upstreamBody(Self.usageOnly) == nil)
        let tail = Array("data: [DONE]".utf8)  // a last event without its blank line
        #expect(machine.upstreamBody(tail) == nil)
        let ended = machine.streamEnded(error: nil)
        let finished = try #require(ended)
        #expect(finished.status == 200 && finished.end == .complete(rest: tail))
        #expect(finished.meter.usage?.promptTokens == 3 && finished.meter.contentEvents == 1)
        // Ended: later events change nothing.
        #expect(machine.upstreamBody(Self.content) == nil)
        #expect(machine.streamEnded(error: nil) == nil)
    }

    @Test func anUpstreamThatBreaksOffClosesTheClientsConnection() throws {
        var machine = ProxyExchangeStateMachine()
        _ = machine.streamStarted(status: 200, meter: Self.meter(), pausable: true)
        _ = machine.upstreamBody(Self.content)
        let ended = machine.streamEnded(error: .connectionLost("reset"))
        let finished = try #require(ended)
        #expect(finished.end == .cutShort(.connectionLost("reset")))
        #expect(finished.meter.contentEvents == 1)
    }

    @Test func theUpstreamPausesOnceWhileTheClientCannotTakeMoreAndResumesWhenItDrains() {
        var machine = ProxyExchangeStateMachine()
        _ = machine.streamStarted(status: 200, meter: Self.meter(), pausable: true)
        #expect(machine.wroteToClient(clientWritable: true) == false)
        #expect(machine.clientWritable() == false)  // not paused: nothing to resume
        #expect(machine.wroteToClient(clientWritable: false) == true)
        #expect(machine.wroteToClient(clientWritable: false) == false)  // already paused
        #expect(machine.clientWritable() == true)
        #expect(machine.clientWritable() == false)

        var mock = ProxyExchangeStateMachine()
        _ = mock.streamStarted(status: 200, meter: Self.meter(), pausable: false)
        #expect(mock.wroteToClient(clientWritable: false) == false)  // a stream that cannot pause is not paused
    }

    @Test func aClientGoneMidStreamEndsItWithWhatPassedAndWritesNothingMore() throws {
        var machine = ProxyExchangeStateMachine()
        _ = machine.streamStarted(status: 200, meter: Self.meter(), pausable: true)
        _ = machine.upstreamBody(Self.content)
        let ended = machine.clientGone()
        let finished = try #require(ended)
        #expect(finished.end == .closeUnwritten && finished.meter.contentEvents == 1)
        #expect(!machine.clientPresent)
        #expect(machine.streamEnded(error: nil) == nil)  // the upstream's own end, arriving later, is ignored
    }

    @Test func aStreamWhoseClientHasAlreadyGoneIsAbandonedButStillMetered() throws {
        var machine = ProxyExchangeStateMachine()
        #expect(machine.clientGone() == nil)
        #expect(machine.streamStarted(status: 200, meter: Self.meter(), pausable: true) == .abandon)
        #expect(machine.upstreamBody(Self.content) == nil)  // metered, not written
        let ended = machine.streamEnded(error: nil)
        let finished = try #require(ended)
        #expect(finished.end == .closeUnwritten && finished.meter.contentEvents == 1)
    }
}
