import Foundation

/// The bodies billing sinks receive, built from records as the export writes them.
public enum SinkPayloads {
    /// A record's exported columns as one JSON object (the export's JSON Lines line).
    public static func recordJSON(_ r: BillingRecord, tenantName: String) -> String {
        var line = BillingExportFormat.jsonl.line(r, tenantName: tenantName)
        if line.hasSuffix("\n") { line.removeLast() }
        return line
    }

    /// One CloudEvents 1.0 event per record, as a JSON batch (`application/cloudevents-batch+json`). The
    /// record id is the event id, so an ingester that deduplicates by `id` and `source` (OpenMeter, Kong)
    /// counts a re-delivered record once.
    public static func cloudEventsBatch(
        _ records: [(record: BillingRecord, tenantName: String)], source: String, type: String
    ) -> String {
        let events = records.map { r, name -> String in
            let head: JSONValue = .object([
                ("specversion", .string("1.0")), ("id", .string(r.id)), ("source", .string(source)),
                ("type", .string(type)), ("subject", .string(r.tenantID)),
                ("time", .string(BillingExportFormat.timestamp(r.startedAt))),
                ("datacontenttype", .string("application/json")),
            ])
            var text = JSONWriter.serialize(head)
            text.removeLast()  // the closing brace: `data` is spliced in as the export wrote it
            return text + ",\"data\":" + recordJSON(r, tenantName: name) + "}"
        }
        return "[" + events.joined(separator: ",") + "]"
    }

    /// A Stripe meter event, form-encoded; nil when its value is zero (nothing to bill).
    public static func stripeMeterEvent(
        _ r: BillingRecord, customerID: String, eventName: String, value: BillingSinkConfig.StripeValue
    ) -> String? {
        let amount: Int64
        switch value {
        case .tokens: amount = Int64(r.usage.prompt).saturatingAdding(Int64(r.usage.completion))
        case .chargedNanos: amount = r.charged?.nanos ?? 0
        case .chargedMinorUnits: amount = r.charged.map(minorUnits) ?? 0
        }
        guard amount > 0 else { return nil }
        let fields: [(String, String)] = [
            ("event_name", eventName), ("identifier", r.id),
            ("timestamp", String(Int64(r.startedAt.timeIntervalSince1970.rounded(.down)))),
            ("payload[stripe_customer_id]", customerID), ("payload[value]", String(amount)),
        ]
        return fields.map { formEncode($0) + "=" + formEncode($1) }.joined(separator: "&")
    }

    /// Digits after the decimal point of a currency's minor unit (ISO 4217); 2 unless listed.
    static let minorDigits: [String: Int] = [
        "JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "UGX": 0, "XAF": 0, "XOF": 0, "PYG": 0, "RWF": 0,
        "BHD": 3, "KWD": 3, "JOD": 3, "OMR": 3, "TND": 3, "LYD": 3, "IQD": 3,
    ]

    /// An amount in its currency's minor units (cents, fen), rounded half up.
    public static func minorUnits(_ money: Money) -> Int64 {
        var divisor: Int64 = 1
        for _ in 0..<(9 - (minorDigits[money.currency] ?? 2)) { divisor *= 10 }
        let (q, r) = money.nanos.quotientAndRemainder(dividingBy: divisor)
        return r * 2 >= divisor ? q + 1 : (r * 2 <= -divisor ? q - 1 : q)
    }

    /// `application/x-www-form-urlencoded`: letters, digits and `-._*` as they are, space as `+`, the
    /// rest percent-encoded as UTF-8.
    public static func formEncode(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "*"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            case UInt8(ascii: " "): out += "+"
            default:
                let hex = Array("0123456789ABCDEF".utf8)
                out += "%" + String(UnicodeScalar(hex[Int(byte >> 4)])) + String(UnicodeScalar(hex[Int(byte & 15)]))
            }
        }
        return out
    }
}
