// Importing fastseg._C loads this library, which runs the TORCH_LIBRARY_FRAGMENT static
// initialisers of every op. Python never calls into it directly: ops are reached only through
// torch.ops.fastseg.*, so no pybind and no libtorch_python dependency (abi3 wheel). CMake leaves
// this file out, so libfastseg.so does not depend on Python.
#include <Python.h>

extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
