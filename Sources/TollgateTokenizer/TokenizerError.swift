/// Why an encoding could not be loaded. Both cases mean the package was built or installed without its resources.
public enum TokenizerError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The vocabulary file is not in the bundle (a binary copied without its `.resources` folder).
    case vocabularyMissing(TokenEncoding)
    /// A line of the vocabulary file is not `base64 rank`, or the ranks are not 0, 1, 2, ...
    case vocabularyMalformed(TokenEncoding, line: Int)

    public var description: String {
        switch self {
        case .vocabularyMissing(let encoding):
            "The \(encoding.rawValue) vocabulary is not installed next to the binary (tollgate_TollgateTokenizer.resources)."
        case .vocabularyMalformed(let encoding, let line): "The \(encoding.rawValue) vocabulary is malformed at line \(line)."
        }
    }
}
