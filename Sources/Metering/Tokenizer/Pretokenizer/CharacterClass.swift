/// The Unicode properties the pre-tokenization patterns ask about, as bit flags per scalar.
///
/// Source of truth: the general category and the White_Space property as the Swift standard library
/// reports them (Swift 6.3: Unicode 16.0), read once per process into a two-stage table. tiktoken 0.14
/// matches with fancy-regex 0.19 / regex-syntax 0.8.11, whose tables are also Unicode 16.0; the
/// code-point sweep of `Tests/tokenizer/test_tiktoken_differential.py` checks the two agree.
struct CharacterClass: OptionSet, Sendable {
    let rawValue: UInt8

    /// `\p{L}`
    static let letter = CharacterClass(rawValue: 1)
    /// `\p{N}`
    static let number = CharacterClass(rawValue: 2)
    /// `\p{M}`
    static let mark = CharacterClass(rawValue: 4)
    /// o200k's `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]`
    static let upperish = CharacterClass(rawValue: 8)
    /// o200k's `[\p{Ll}\p{Lm}\p{Lo}\p{M}]`
    static let lowerish = CharacterClass(rawValue: 16)
    /// `\s` (Unicode White_Space)
    static let space = CharacterClass(rawValue: 32)
    /// `\r` or `\n`
    static let newline = CharacterClass(rawValue: 64)
    /// `[\p{P}\p{S}]` (DeepSeek's pattern asks for the two together)
    static let punctuationOrSymbol = CharacterClass(rawValue: 128)
}

/// Lookup of ``CharacterClass`` flags for any scalar value.
struct CharacterClassTable: Sendable {
    static let shared = CharacterClassTable()
    /// As Hugging Face `tokenizers` 0.23 sees the scalars (its Oniguruma has Unicode 16.0, where Swift
    /// 6.3 has 17.0): characters assigned after 16.0 are unassigned there. For deepseek_v3; the
    /// code-point sweep of `Tests/tokenizer/test_deepseek_differential.py` checks it.
    static let unicode16 = CharacterClassTable(assignedBy: (16, 0))

    /// Flags for ASCII, the common case, without the two-stage indirection.
    let ascii: [UInt8]
    /// Block index (scalar >> 8) → offset into `blocks`.
    let stage1: [UInt16]
    /// Deduplicated 256-entry blocks of flags.
    let blocks: [UInt8]

    static let whiteSpace: Set<UInt32> = [
        0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004,
        0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000,
    ]

    /// `assignedBy`: a scalar first assigned in a later Unicode version has no category flags.
    static func classify(_ value: UInt32, assignedBy: (major: Int, minor: Int)? = nil) -> UInt8 {
        var flags: CharacterClass = []
        if whiteSpace.contains(value) { flags.insert(.space) }
        if value == 0x0A || value == 0x0D { flags.insert(.newline) }
        guard let scalar = Unicode.Scalar(value) else { return flags.rawValue }
        if let limit = assignedBy, let age = scalar.properties.age,
            age.major > limit.major || (age.major == limit.major && age.minor > limit.minor)
        {
            return flags.rawValue
        }
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .titlecaseLetter:
            flags.formUnion([.letter, .upperish])
        case .lowercaseLetter:
            flags.formUnion([.letter, .lowerish])
        case .modifierLetter, .otherLetter:
            flags.formUnion([.letter, .upperish, .lowerish])
        case .nonspacingMark, .spacingMark, .enclosingMark:
            flags.formUnion([.mark, .upperish, .lowerish])
        case .decimalNumber, .letterNumber, .otherNumber:
            flags.insert(.number)
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation,
            .finalPunctuation, .otherPunctuation, .mathSymbol, .currencySymbol, .modifierSymbol, .otherSymbol:
            flags.insert(.punctuationOrSymbol)
        default:
            break
        }
        return flags.rawValue
    }

    init(assignedBy: (major: Int, minor: Int)? = nil) {
        var ascii = [UInt8](repeating: 0, count: 128)
        for v in 0..<128 { ascii[v] = Self.classify(UInt32(v)) }
        var stage1 = [UInt16](repeating: 0, count: 0x1100)
        var blocks: [UInt8] = []
        var seen: [[UInt8]: UInt16] = [:]
        var block = [UInt8](repeating: 0, count: 256)
        for b in 0..<0x1100 {
            // Planes 4–13 are unassigned; 15–16 are private use (category Co): both have no flags.
            if (0x400..<0xE00).contains(b) || b >= 0xF00 {
                for i in 0..<256 { block[i] = 0 }
            } else {
                for i in 0..<256 { block[i] = Self.classify(UInt32(b << 8 | i), assignedBy: assignedBy) }
            }
            if let index = seen[block] {
                stage1[b] = index
            } else {
                let index = UInt16(blocks.count / 256)
                seen[block] = index
                blocks.append(contentsOf: block)
                stage1[b] = index
            }
        }
        self.ascii = ascii
        self.stage1 = stage1
        self.blocks = blocks
    }

    @inline(__always)
    func flags(_ scalar: UInt32) -> UInt8 {
        if scalar < 128 { return ascii[Int(scalar)] }
        let block = Int(stage1[Int(scalar >> 8)])
        return blocks[block << 8 | Int(scalar & 0xFF)]
    }
}
