public import SharedKit
import SharedKitRuntime

#if canImport(Glibc)
import Glibc
#endif

/// The machine-readable mark every image and video Atelier makes carries (EU AI Act Art. 50(2)): IPTC's
/// Digital Source Type, the generator and the creation time, as an XMP packet written into the file.
///
/// The source type says truthfully how the picture was made: by a trained model at a provider
/// (`trainedAlgorithmicMedia`), or by the embedded renderer, which is procedural (`algorithmicMedia`); a
/// transform of someone's upload is a composite of their picture and the machine's work.
public struct Provenance: Sendable, Equatable {
    /// Terms of IPTC's Digital Source Type vocabulary (http://cv.iptc.org/newscodes/digitalsourcetype/).
    public enum SourceType: String, Sendable {
        case trainedAlgorithmicMedia
        case compositeWithTrainedAlgorithmicMedia
        case algorithmicMedia
        case compositeSynthetic
        case algorithmicallyEnhanced

        public var uri: String { "http://cv.iptc.org/newscodes/digitalsourcetype/\(rawValue)" }
    }

    public let sourceType: SourceType
    /// The model that made it (`black-forest-labs/flux-schnell`, `atelier-local`).
    public let model: String
    /// Seconds since the epoch.
    public let created: Int64

    public init(sourceType: SourceType, model: String, created: Int64) {
        self.sourceType = sourceType
        self.model = model
        self.created = created
    }

    /// The mark for a job of `task` made by `model`; `fromUpload` when a transform's source is a picture
    /// the user uploaded (not one Atelier made). The embedded renderer's model is `atelier-local`.
    public static func of(task: Generations.Task, model: String, fromUpload: Bool, at created: Int64) -> Provenance {
        let trained = model != LocalRenderer.model
        let type: SourceType
        switch (task, trained, fromUpload) {
        case (.upscale, true, true), (.inpaint, true, true): type = .compositeWithTrainedAlgorithmicMedia
        case (.inpaint, false, true): type = .compositeSynthetic
        case (.upscale, false, true): type = .algorithmicallyEnhanced
        case (_, true, _): type = .trainedAlgorithmicMedia
        case (_, false, _): type = .algorithmicMedia
        }
        return Provenance(sourceType: type, model: model, created: created)
    }

    /// The generator as XMP's CreatorTool names it.
    public var generator: String { "Atelier (\(model))" }

    /// An XMP packet (XMP spec part 1) with the IPTC Extension's DigitalSourceType, xmp:CreatorTool and
    /// xmp:CreateDate / xmp:MetadataDate. The prompt is not written: it may be private.
    public var xmp: String {
        let date = Self.iso8601(created)
        return """
            <?xpacket begin="\u{FEFF}" id="W5M0MpCehiHzreSzNTczkc9d"?>
            <x:xmpmeta xmlns:x="adobe:ns:meta/">
             <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
              <rdf:Description rdf:about=""
                xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
                xmlns:xmp="http://ns.adobe.com/xap/1.0/"
                Iptc4xmpExt:DigitalSourceType="\(sourceType.uri)"
                xmp:CreatorTool="\(Markup.escape(generator))"
                xmp:CreateDate="\(date)"
                xmp:MetadataDate="\(date)"/>
             </rdf:RDF>
            </x:xmpmeta>
            <?xpacket end="r"?>
            """
    }

    /// An MP4 (ISO base media file) with the packet appended as a top-level `uuid` box of XMP's UUID
    /// (XMP spec part 3, "MPEG-4"): boxes after `moov` and `mdat` move no sample offset, so the video is
    /// unchanged. A last box of size 0 ("to the end of the file") gets its real size written in place
    /// first, or the new box would fall inside it. Nil when the bytes are not a well-formed sequence of boxes.
    public func markingMP4(_ bytes: [UInt8]) -> [UInt8]? {
        var bytes = bytes
        var offset = 0
        while offset < bytes.count {
            guard bytes.count - offset >= 8 else { return nil }
            var size = bytes[offset..<offset + 4].reduce(0) { $0 << 8 | Int($1) }
            if size == 1 {
                guard bytes.count - offset >= 16 else { return nil }
                size = bytes[offset + 8..<offset + 16].reduce(0) { $0 << 8 | Int($1) }
            } else if size == 0 {
                // Runs to the end of the file: its real size, when the 32-bit field holds it (a 64-bit
                // header would move the data behind it).
                size = bytes.count - offset
                guard size <= Int(UInt32.max) else { return nil }
                withUnsafeBytes(of: UInt32(size).bigEndian) { for i in 0..<4 { bytes[offset + i] = $0[i] } }
            }
            guard size >= 8, size <= bytes.count - offset else { return nil }
            offset += size
        }
        let packet = Array(xmp.utf8)
        let xmpUUID: [UInt8] = [0xBE, 0x7A, 0xCF, 0xCB, 0x97, 0xA9, 0x42, 0xE8, 0x9C, 0x71, 0x99, 0x94, 0x91, 0xE3, 0xAF, 0xAC]
        let total = UInt32(8 + xmpUUID.count + packet.count)
        var box = withUnsafeBytes(of: total.bigEndian) { Array($0) }
        box += Array("uuid".utf8) + xmpUUID + packet
        return bytes + box
    }

    static func iso8601(_ seconds: Int64) -> String {
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return
            "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
    }
}
