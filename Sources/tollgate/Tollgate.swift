import ArgumentParser
import TollgateServer
@main struct Tollgate: ParsableCommand { func run() {} }
