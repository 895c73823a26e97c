import Foundation
import Logging
import ServiceLifecycleTestKit
import Testing
@testable import TollgateServer

/// SIGTERM's first step: readiness turns to draining at once, and the listener is held open for the configured delay.
struct ShutdownDrainTests {
    @Test func theGateMarksDrainingAtOnceAndHoldsForTheDelay() async throws {
        let state = DrainState()
        let gate = ShutdownDrainGate(state: state, delay: .seconds(1), logger: Logger(label: "test"))
        let clock = ContinuousClock()
        try await testGracefulShutdown { trigger in
            async let returned = Self.run(gate, clock: clock)
            try await Task.sleep(for: .milliseconds(50))
            #expect(!state.isDraining, "nothing drains before the shutdown")
            let start = clock.now
            trigger.triggerGracefulShutdown()
            while !state.isDraining && clock.now - start < .seconds(5) { try await Task.sleep(for: .milliseconds(5)) }
            let began = clock.now - start
            let end = try await returned
            #expect(state.isDraining)
            // Draining starts at once; the gate lets the application's own shutdown begin only after the delay.
            #expect(began < .milliseconds(900))
            #expect(end - start >= .seconds(1))
        }
    }

    private static func run(_ gate: ShutdownDrainGate, clock: ContinuousClock) async throws -> ContinuousClock.Instant {
        try await gate.run()
        return clock.now
    }

    @Test func settingsComeFromTheEnvironment() throws {
        let defaults = try TollgateConfiguration(environment: [:])
        #expect(defaults.shutdownDelay == .zero)
        #expect(defaults.drainTimeout == .seconds(30))
        let set = try TollgateConfiguration(environment: ["TOLLGATE_SHUTDOWN_DELAY_SECONDS": "5", "TOLLGATE_DRAIN_TIMEOUT_SECONDS": "40"])
        #expect(set.shutdownDelay == .seconds(5))
        #expect(set.drainTimeout == .seconds(40))
        #expect(throws: ConfigurationError.self) { try TollgateConfiguration(environment: ["TOLLGATE_DRAIN_TIMEOUT_SECONDS": "0"]) }
        #expect(throws: ConfigurationError.self) { try TollgateConfiguration(environment: ["TOLLGATE_SHUTDOWN_DELAY_SECONDS": "soon"]) }
    }
}
