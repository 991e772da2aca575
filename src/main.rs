fn main() {
    mqttcli::main()
}
