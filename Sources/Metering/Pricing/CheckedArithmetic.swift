/// A token or money sum that does not fit in 64 bits.
///
/// Counts and amounts come from clients and upstreams, neither of which is trusted, so every sum and
/// product on them is checked: an overflow is an error the caller answers or records, never a trap that
/// would end every other tenant's requests with the process.
public struct ArithmeticOverflow: Error, Sendable, Equatable, CustomStringConvertible {
    public var what: String

    public init(_ what: String) { self.what = what }

    public var description: String { "\(what) does not fit in 64 bits" }
}

extension FixedWidthInteger {
    /// `self + other`, or `ArithmeticOverflow` naming `what`.
    @inlinable
    public func checkedAdding(_ other: Self, _ what: @autoclosure () -> String) throws(ArithmeticOverflow) -> Self {
        let (sum, overflow) = addingReportingOverflow(other)
        if overflow { throw ArithmeticOverflow(what()) }
        return sum
    }

    /// `self * other`, or `ArithmeticOverflow` naming `what`.
    @inlinable
    public func checkedMultiplying(_ other: Self, _ what: @autoclosure () -> String) throws(ArithmeticOverflow)
        -> Self
    {
        let (product, overflow) = multipliedReportingOverflow(by: other)
        if overflow { throw ArithmeticOverflow(what()) }
        return product
    }

    /// `self + other`, held at the type's bounds instead of wrapping. For counters that must never trap
    /// and whose bound is unreachable by real traffic.
    @inlinable
    public func saturatingAdding(_ other: Self) -> Self {
        let (sum, overflow) = addingReportingOverflow(other)
        guard overflow else { return sum }
        return other > 0 ? .max : .min
    }

    /// `self - other`, held at the type's bounds instead of wrapping.
    @inlinable
    public func saturatingSubtracting(_ other: Self) -> Self {
        let (difference, overflow) = subtractingReportingOverflow(other)
        guard overflow else { return difference }
        return other > 0 ? .min : .max
    }

    /// Adds in place, held at the type's bounds.
    @inlinable
    public mutating func saturatingAdd(_ other: Self) { self = saturatingAdding(other) }

    /// Subtracts in place, held at the type's bounds.
    @inlinable
    public mutating func saturatingSubtract(_ other: Self) { self = saturatingSubtracting(other) }
}
