import HTTPTypes

extension HTTPFields {
    /// The value of the fields named `name`, joined with ", " when there are several: what `self[name]`
    /// gives (except for `Cookie`, which that subscript joins with "; "). The subscript joins through a
    /// generic lazy sequence even for a single field, about 4k instructions a lookup; this is one walk.
    func combined(_ name: HTTPField.Name) -> String? {
        var value: String?
        for field in self where field.name == name {
            value = value.map { $0 + ", " + field.value } ?? field.value
        }
        return value
    }
}
