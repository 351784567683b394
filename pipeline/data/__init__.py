"""Reading data: photos (`images`), face lists and face-free photos (`datasets`), WIDER FACE as
published (`wider`) and where the face data kit is (`location`). Imports nothing else of
`pipeline` but the box convention (`pipeline.detection.boxes`)."""
