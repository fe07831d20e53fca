# Chunked (SSD) Mamba-2 scan (issue 6); included from src/cuda/CMakeLists.txt.
target_sources(ssmkit PRIVATE ${CMAKE_CURRENT_LIST_DIR}/scan_ssd.cu ${CMAKE_CURRENT_LIST_DIR}/scan_ssd_pipe.cu
            ${CMAKE_CURRENT_LIST_DIR}/scan_ssd_wg1.cu)
