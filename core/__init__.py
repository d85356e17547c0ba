"""The shared contract between training, conversion, devices and the centre: labels, face crops, the
TFLite runner and the MQTT schema. Nothing here imports TensorFlow or any other part of emo7ion."""
