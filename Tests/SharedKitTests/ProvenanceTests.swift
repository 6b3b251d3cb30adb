import Testing

@testable import SharedKit
@testable import SharedKitMedia

/// The AI-content mark: which IPTC source type each job gets, the XMP packet, and the MP4 box.
@Suite struct ProvenanceTests {
    @Test func sourceTypesSayHowThePictureWasMade() {
        func type(_ task: Generations.Task, _ model: String, upload: Bool) -> Provenance.SourceType {
            Provenance.of(task: task, model: model, fromUpload: upload, at: 0).sourceType
        }
        #expect(type(.image, "black-forest-labs/flux-schnell", upload: false) == .trainedAlgorithmicMedia)
        #expect(type(.video, "minimax/video-01", upload: false) == .trainedAlgorithmicMedia)
        #expect(type(.inpaint, "black-forest-labs/flux-fill-dev", upload: true) == .compositeWithTrainedAlgorithmicMedia)
        #expect(type(.upscale, "nightmareai/real-esrgan", upload: true) == .compositeWithTrainedAlgorithmicMedia)
        #expect(type(.upscale, "nightmareai/real-esrgan", upload: false) == .trainedAlgorithmicMedia)
        #expect(type(.image, LocalRenderer.model, upload: false) == .algorithmicMedia)
        #expect(type(.inpaint, LocalRenderer.model, upload: true) == .compositeSynthetic)
        #expect(type(.upscale, LocalRenderer.model, upload: true) == .algorithmicallyEnhanced)
        #expect(type(.inpaint, LocalRenderer.model, upload: false) == .algorithmicMedia)
    }

    @Test func thePacketNamesTypeGeneratorAndTimeWithTheModelEscaped() {
        let mark = Provenance(sourceType: .trainedAlgorithmicMedia, model: "a&b/<m>\"", created: 1_764_565_200)
        let xmp = mark.xmp
        #expect(xmp.contains(#"Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia""#))
        #expect(xmp.contains(#"xmp:CreatorTool="Atelier (a&amp;b/&lt;m&gt;&quot;)""#))
        #expect(xmp.contains(#"xmp:CreateDate="2025-12-01T05:00:00Z""#))
        #expect(xmp.hasPrefix("<?xpacket begin=\"\u{FEFF}\"") && xmp.hasSuffix("<?xpacket end=\"r\"?>"))
    }

    @Test func anMP4GetsOneXMPBoxAfterItsOwnAndMalformedFilesAreRefused() throws {
        let ftyp: [UInt8] = [0, 0, 0, 16] + Array("ftypmp42".utf8) + [0, 0, 0, 0]
        let mdat: [UInt8] = [0, 0, 0, 12] + Array("mdat".utf8) + [1, 2, 3, 4]
        let mark = Provenance(sourceType: .trainedAlgorithmicMedia, model: "m", created: 0)
        let marked = try #require(mark.markingMP4(ftyp + mdat))
        #expect(Array(marked.prefix(28)) == ftyp + mdat)
        let box = Array(marked.dropFirst(28))
        #expect(box.prefix(4).reduce(0) { $0 << 8 | Int($1) } == box.count)
        #expect(Array(box[4..<8]) == Array("uuid".utf8))
        #expect(box[8] == 0xBE && box[23] == 0xAC)
        #expect(String(decoding: box.dropFirst(24), as: UTF8.self) == mark.xmp)

        #expect(mark.markingMP4(ftyp + [0, 0, 0, 99] + Array("mdat".utf8)) == nil)  // box runs past the end
        #expect(mark.markingMP4(ftyp + [0, 0, 0]) == nil)  // trailing bytes
        #expect(mark.markingMP4(ftyp + [0, 0, 0, 4] + Array("free".utf8)) == nil)  // size below a header
        // A last box of size 0 runs to the end of the file (ISO/IEC 14496-12): it gets its real size, so the
        // XMP box after it is a box of its own, not the tail of the media data.
        let open = try #require(mark.markingMP4(ftyp + [0, 0, 0, 0] + Array("mdat".utf8) + [9, 9]))
        #expect(Array(open[16..<26]) == [0, 0, 0, 10] + Array("mdat".utf8) + [9, 9])
        #expect(Array(open[30..<34]) == Array("uuid".utf8))
    }
}
