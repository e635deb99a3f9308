"""Other frameworks' model files, read without those frameworks: TFLite FlatBuffers
(:mod:`.tflite`), frozen TensorFlow GraphDefs (:mod:`.graphdef`), and a TFLite-to-ONNX converter
for the small helper models (:mod:`.tflite_onnx`). What a graph *means* (which layers make a
TTN) is :mod:`dctoon.importers`' business, not theirs."""
