import Hummingbird
import Prometheus
import Yams
